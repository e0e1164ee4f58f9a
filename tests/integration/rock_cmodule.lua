-- Prints the compiler arguments for one C module of rockspec/freshet-scm-1.rockspec, one a
-- line: -I for its incdirs, -L for its libdirs, its sources (as paths under root) and -l for
-- its libraries. The tests build freshet/<name>.so with `cc` from these (16_busted.sh,
-- 43_harness_parity.py), so the rockspec stays the one list of what each C module is made of.
--
--   luajit tests/integration/rock_cmodule.lua <repository root> freshet.native
local root, name = ...
if not root or not name then
  io.stderr:write("usage: rock_cmodule.lua <repository root> <module>\n")
  os.exit(2)
end
local spec = {}
local chunk = assert(loadfile(root .. "/rockspec/freshet-scm-1.rockspec"))
setfenv(chunk, spec)
chunk()
local module = ((spec.build or {}).modules or {})[name]
if type(module) ~= "table" or type(module.sources) ~= "table" then
  io.stderr:write(("rock_cmodule.lua: the rockspec has no C module %q\n"):format(name))
  os.exit(1)
end
-- "$(OPENSSL_INCDIR)" and the like are LuaRocks' external_dependencies; cc finds a system
-- library's headers and archive in its default paths, as on Debian.
local function is_var(dir) return dir:match("^%$%(") ~= nil end
local args = {}
for _, dir in ipairs(module.incdirs or {}) do
  if not is_var(dir) then args[#args + 1] = "-I" .. root .. "/" .. dir end
end
for _, dir in ipairs(module.libdirs or {}) do
  if not is_var(dir) then args[#args + 1] = "-L" .. root .. "/" .. dir end
end
for _, src in ipairs(module.sources) do args[#args + 1] = root .. "/" .. src end
for _, lib in ipairs(module.libraries or {}) do args[#args + 1] = "-l" .. lib end
print(table.concat(args, "\n"))
