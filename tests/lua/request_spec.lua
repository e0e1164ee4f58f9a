-- freshet.request: cookies, query and form decoding, JSON bodies, client addresses.
local request = require "freshet.request"
local cjson = require "cjson"

local function req(headers, remote)
  return { method = "GET", path = "/", params = {}, query = {}, headers = headers or {},
           remote = remote or "203.0.113.9" }
end

describe("freshet.request", function()
  describe("cookies", function()
    it("parses the Cookie header", function()
      assert.same({ session = "abc.def", theme = "dark", empty = "" },
        request.cookies(req({ cookie = "session=abc.def; theme=dark;empty=" })))
    end)

    it("keeps '=' inside values, strips quotes and blanks", function()
      assert.same({ a = "x=y==", b = "quoted value" },
        request.cookies(req({ cookie = '  a=x=y== ;  b="quoted value"  ' })))
    end)

    it("keeps the first of a repeated name and skips pairs without a name", function()
      assert.same({ id = "1" }, request.cookies(req({ cookie = "id=1; id=2; =3; junk" })))
    end)

    it("returns values as sent, without percent-decoding", function()
      assert.same({ v = "a%20b" }, request.cookies(req({ cookie = "v=a%20b" })))
    end)

    it("gives {} without a Cookie header, and takes a header value too", function()
      assert.same({}, request.cookies(req()))
      assert.same({ a = "1" }, request.cookies("a=1"))
    end)

    it("raises for misuse", function()
      assert.has_error(function() request.cookies(nil) end,
        "freshet.request.cookies: bad argument #1 'req' (table or string expected, got nil)")
    end)
  end)

  describe("unescape and escape", function()
    it("decodes percent-escapes, and + as a space unless told not to", function()
      assert.equal("a b/c+d", request.unescape("a+b%2Fc%2Bd"))
      assert.equal("a+b", request.unescape("a+b", { plus = false }))
      assert.equal("é", request.unescape("%C3%a9"))
    end)

    it("returns nil, err for a malformed escape or %00", function()
      for _, s in ipairs({ "%", "%4", "%4g", "%g4", "a%%41", "x%00y" }) do
        assert.same({ nil, "invalid percent-encoding" }, { request.unescape(s) }, s)
      end
    end)

    it("escapes all but the unreserved characters, reversibly", function()
      assert.equal("a%20b%2Fc~d-e_f.g%C3%A9%26%3D%2B", request.escape("a b/c~d-e_f.gé&=+"))
      local all = {}
      for b = 1, 255 do all[#all + 1] = string.char(b) end
      local s = table.concat(all)
      assert.equal(s, request.unescape(request.escape(s)))
    end)

    it("raises for misuse", function()
      assert.has_error(function() request.escape(5) end,
        "freshet.request.escape: bad argument #1 's' (string expected, got number)")
      assert.has_error(function() request.unescape("a", { plus = false, x = 1 }) end,
        "freshet.request.unescape: unknown option 'x' (plus)")
    end)
  end)

  describe("parse_query", function()
    it("decodes like the server's req.query", function()
      assert.same({ user = "ann smith", room = "a&b", flag = "", e = "" },
        request.parse_query("user=ann+smith&room=a%26b&flag&&e="))
    end)

    it("keeps the first of a repeated key, or all with opts.all", function()
      assert.same({ tag = "a" }, request.parse_query("tag=a&tag=b"))
      assert.same({ tag = { "a", "b" }, x = { "" } }, request.parse_query("tag=a&tag=b&x", { all = true }))
    end)

    it("returns nil, err for a bad escape", function()
      assert.same({ nil, "invalid percent-encoding in the query string" },
        { request.parse_query("a=%zz") })
    end)

    it("gives {} for an empty string", function()
      assert.same({}, request.parse_query(""))
    end)
  end)

  describe("form", function()
    it("decodes an application/x-www-form-urlencoded body", function()
      assert.same({ name = "Ann O'Neil", msg = "1+1=2" }, request.form("name=Ann+O%27Neil&msg=1%2B1%3D2"))
      assert.same({ c = { "1", "2" } }, request.form("c=1&c=2", { all = true }))
    end)

    it("returns nil, err for a bad escape and raises for a non-string", function()
      assert.same({ nil, "invalid percent-encoding in the form body" }, { request.form("a=%") })
      assert.has_error(function() request.form(nil) end,
        "freshet.request.form: bad argument #1 'body' (string expected, got nil)")
    end)
  end)

  describe("json", function()
    it("decodes any JSON value", function()
      assert.same({ user = "ann", n = 1, list = { 1, 2 } }, request.json('{"user":"ann","n":1,"list":[1,2]}'))
      assert.equal("x", request.json('"x"'))
      assert.equal(cjson.null, request.json("null"))
    end)

    it("says what is wrong with bad JSON", function()
      assert.same({ nil, "invalid JSON: Expected object key string but found T_END at character 2" },
        { request.json("{") })
      assert.same({ nil, "invalid JSON: the body is empty" }, { request.json("") })
      assert.same({ nil, "invalid JSON: the body is empty" }, { request.json(" \n") })
    end)

    it("raises for a body that is not a string", function()
      assert.has_error(function() request.json({}) end,
        "freshet.request.json: bad argument #1 'body' (string expected, got table)")
    end)
  end)

  describe("client_ip", function()
    local proxies = { "10.0.0.0/8", "192.168.1.1", "2001:db8::/32" }

    it("is req.remote without trusted proxies", function()
      local r = req({ ["x-forwarded-for"] = "1.2.3.4" }, "10.0.0.5")
      assert.equal("10.0.0.5", request.client_ip(r))
      assert.equal("10.0.0.5", request.client_ip(r, {}))
    end)

    it("ignores X-Forwarded-For from an untrusted peer", function()
      local r = req({ ["x-forwarded-for"] = "1.2.3.4" }, "198.51.100.7")
      assert.equal("198.51.100.7", request.client_ip(r, proxies))
    end)

    it("takes the right-most address that is not a trusted proxy", function()
      local r = req({ ["x-forwarded-for"] = "6.6.6.6, 1.2.3.4, 10.1.2.3" }, "10.0.0.5")
      assert.equal("1.2.3.4", request.client_ip(r, proxies))
    end)

    it("does not let a client spoof its way past the first untrusted hop", function()
      -- The client sent "X-Forwarded-For: 10.9.9.9"; the trusted proxy appended the client.
      local r = req({ ["x-forwarded-for"] = "10.9.9.9, 1.2.3.4" }, "192.168.1.1")
      assert.equal("1.2.3.4", request.client_ip(r, proxies))
    end)

    it("takes the left-most address when every hop is trusted", function()
      local r = req({ ["x-forwarded-for"] = "10.0.0.1,10.0.0.2" }, "10.0.0.3")
      assert.equal("10.0.0.1", request.client_ip(r, proxies))
    end)

    it("stops at an entry that is not an address", function()
      local r = req({ ["x-forwarded-for"] = "1.2.3.4, unknown, 10.0.0.2" }, "10.0.0.3")
      assert.equal("10.0.0.2", request.client_ip(r, proxies))
      r = req({ ["x-forwarded-for"] = "garbage" }, "10.0.0.3")
      assert.equal("10.0.0.3", request.client_ip(r, proxies))
    end)

    it("is req.remote when a trusted peer sends no X-Forwarded-For", function()
      assert.equal("10.0.0.3", request.client_ip(req({}, "10.0.0.3"), proxies))
    end)

    it("strips ports and brackets, and knows IPv6 ranges", function()
      local r = req({ ["x-forwarded-for"] = "[2001:DB9::1]:443, 1.2.3.4:5555" }, "2001:db8:0:0::77")
      assert.equal("1.2.3.4", request.client_ip(r, proxies))
      r = req({ ["x-forwarded-for"] = "[2001:DB9::1]:443, 2001:db8::1" }, "2001:db8::2")
      assert.equal("2001:db9::1", request.client_ip(r, proxies))
    end)

    it("treats an IPv4-mapped IPv6 peer as the IPv4 address", function()
      local r = req({ ["x-forwarded-for"] = "1.2.3.4" }, "::ffff:10.0.0.9")
      assert.equal("1.2.3.4", request.client_ip(r, proxies))
    end)

    it("matches CIDR ranges on their bits only", function()
      local t = request.trusted({ "172.16.0.0/12", "0.0.0.0/32", "::1", "fd00::/8" })
      assert.is_true(t:contains("172.16.0.1"))
      assert.is_true(t:contains("172.31.255.255"))
      assert.is_false(t:contains("172.32.0.0"))
      assert.is_false(t:contains("0.0.0.1"))
      assert.is_true(t:contains("::1"))
      assert.is_true(t:contains("0:0:0:0:0:0:0:1"))
      assert.is_true(t:contains("fdff::1"))
      assert.is_false(t:contains("fe00::1"))
      assert.is_false(t:contains("not an address"))
    end)

    it("refuses addresses that read two ways", function()
      local t = request.trusted({ "10.0.0.8" })
      assert.is_false(t:contains("010.0.0.8"))
      assert.is_false(t:contains("10.0.0.08"))
      assert.is_false(t:contains("10.0.0.256"))
    end)

    it("takes a compiled list as well as a plain one", function()
      local t = request.trusted(proxies)
      local r = req({ ["x-forwarded-for"] = "1.2.3.4" }, "10.0.0.5")
      assert.equal("1.2.3.4", request.client_ip(r, t))
    end)

    it("raises for a bad trusted entry, naming it", function()
      assert.has_error(function() request.client_ip(req(), { "10.0.0.0/33" }) end,
        "freshet.request.client_ip: bad argument #2 'trusted' (entry 1 '10.0.0.0/33' is not an IP address or CIDR range)")
      assert.has_error(function() request.trusted({ "10.0.0.1", "localhost" }) end,
        "freshet.request.trusted: bad argument #1 'trusted' (entry 2 'localhost' is not an IP address or CIDR range)")
      assert.has_error(function() request.trusted({ 10 }) end,
        "freshet.request.trusted: bad argument #1 'trusted' (entry 1 is a number, not an address)")
      assert.has_error(function() request.client_ip(req(), "10.0.0.1") end,
        "freshet.request.client_ip: bad argument #2 'trusted' (list of addresses expected, got string)")
      assert.has_error(function() request.client_ip({}) end,
        "freshet.request.client_ip: bad argument #1 'req.remote' (string expected, got nil)")
    end)
  end)

  it("is reachable as freshet.request", function()
    assert.equal(request, require("freshet").request)
  end)
end)
