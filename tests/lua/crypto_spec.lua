-- freshet.crypto, the C module behind freshet.jwt, built from src/lua/crypto.c as
-- freshet/crypto.so by tests/integration/16_busted.sh.
local crypto = require "freshet.crypto"

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

describe("freshet.crypto", function()
  describe("hmac_sha256", function()
    -- RFC 4231, test cases 1, 2 and 6.
    it("matches the RFC 4231 test vectors", function()
      assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        hex(crypto.hmac_sha256(("\11"):rep(20), "Hi There")))
      assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")))
      assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        hex(crypto.hmac_sha256(("\170"):rep(131),
          "Test Using Larger Than Block-Size Key - Hash Key First")))
    end)

    it("returns 32 raw bytes and takes binary keys and messages", function()
      local mac = crypto.hmac_sha256("k\0ey", "m\0sg")
      assert.equal(32, #mac)
      assert.not_equal(mac, crypto.hmac_sha256("k", "m\0sg"))
    end)

    it("names the function and the argument on misuse", function()
      assert.has_error(function() crypto.hmac_sha256(nil, "x") end,
        "freshet.crypto.hmac_sha256: bad argument #1 'key' (string expected, got nil)")
      assert.has_error(function() crypto.hmac_sha256("k", 42) end,
        "freshet.crypto.hmac_sha256: bad argument #2 'msg' (string expected, got number)")
    end)
  end)

  describe("sha256", function()
    it("matches the FIPS 180-2 examples", function()
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        hex(crypto.sha256("")))
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        hex(crypto.sha256("abc")))
      assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        hex(crypto.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
    end)

    it("refuses a table", function()
      assert.has_error(function() crypto.sha256({}) end,
        "freshet.crypto.sha256: bad argument #1 'msg' (string expected, got table)")
    end)
  end)

  describe("base64url", function()
    -- RFC 4648 section 10, without the padding.
    local vectors = { { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
      { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" } }

    it("encodes the RFC 4648 vectors without padding", function()
      for _, v in ipairs(vectors) do assert.equal(v[2], crypto.base64url_encode(v[1])) end
    end)

    it("decodes them back", function()
      for _, v in ipairs(vectors) do assert.equal(v[1], crypto.base64url_decode(v[2])) end
    end)

    it("uses - and _ instead of + and /", function()
      assert.equal("-_8", crypto.base64url_encode(unhex("fbff")))
      assert.equal(unhex("fbff"), crypto.base64url_decode("-_8"))
    end)

    it("round-trips every length of binary data", function()
      for n = 0, 70 do
        local bytes = crypto.random_bytes(n)
        local text = crypto.base64url_encode(bytes)
        assert.is_nil(text:find("[^%w%-_]"))
        assert.equal(bytes, crypto.base64url_decode(text))
      end
    end)

    it("accepts correct padding", function()
      assert.equal("f", crypto.base64url_decode("Zg=="))
      assert.equal("fo", crypto.base64url_decode("Zm8="))
    end)

    it("returns nil and a reason for text that is not base64url", function()
      local cases = {
        ["Zm9v+mFy"] = "invalid base64url: unexpected character at position 5",
        ["Zm9v/mFy"] = "invalid base64url: unexpected character at position 5",
        ["Zm 9"] = "invalid base64url: unexpected character at position 3",
        ["Zm9vY"] = "invalid base64url: impossible length",
        ["Zg="] = "invalid base64url: misplaced '=' padding",
        ["Zg=a"] = "invalid base64url: misplaced '=' padding",
        ["Zm8=="] = "invalid base64url: misplaced '=' padding",
        ["===="] = "invalid base64url: misplaced '=' padding",
        ["Zh"] = "invalid base64url: non-zero trailing bits",
        ["Zm9"] = "invalid base64url: non-zero trailing bits",
      }
      for text, reason in pairs(cases) do
        local value, err = crypto.base64url_decode(text)
        assert.is_nil(value, text)
        assert.equal(reason, err, text)
      end
    end)

    it("names the function and the argument on misuse", function()
      assert.has_error(function() crypto.base64url_encode(nil) end,
        "freshet.crypto.base64url_encode: bad argument #1 'data' (string expected, got nil)")
      assert.has_error(function() crypto.base64url_decode(true) end,
        "freshet.crypto.base64url_decode: bad argument #1 'text' (string expected, got boolean)")
    end)
  end)

  describe("constant_time_equal", function()
    it("compares bytes", function()
      assert.is_true(crypto.constant_time_equal("", ""))
      assert.is_true(crypto.constant_time_equal("a\0b", "a\0b"))
      assert.is_false(crypto.constant_time_equal("a\0b", "a\0c"))
      assert.is_false(crypto.constant_time_equal("abc", "ab"))
    end)

    it("names the argument on misuse", function()
      assert.has_error(function() crypto.constant_time_equal("a", nil) end,
        "freshet.crypto.constant_time_equal: bad argument #2 'b' (string expected, got nil)")
    end)
  end)

  describe("random_bytes", function()
    it("returns n bytes, different each time", function()
      assert.equal("", crypto.random_bytes(0))
      local a, b = crypto.random_bytes(32), crypto.random_bytes(32)
      assert.equal(32, #a)
      assert.not_equal(a, b)
    end)

    it("refuses counts that are not small whole numbers", function()
      local msg = "freshet.crypto.random_bytes: bad argument #1 'n' (an integer from 0 to 1048576 expected)"
      assert.has_error(function() crypto.random_bytes(-1) end, msg)
      assert.has_error(function() crypto.random_bytes(1.5) end, msg)
      assert.has_error(function() crypto.random_bytes(0 / 0) end, msg)
      assert.has_error(function() crypto.random_bytes(2 ^ 21) end, msg)
      assert.has_error(function() crypto.random_bytes("8") end,
        "freshet.crypto.random_bytes: bad argument #1 'n' (number expected, got string)")
    end)
  end)
end)
