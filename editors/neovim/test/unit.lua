-- Plugin logic in a real headless Neovim, no server needed:
--   nvim --headless -u NONE -i NONE -n --cmd 'set rtp^=editors/neovim' -c 'luafile editors/neovim/test/unit.lua'
local lex = require('lex_align')
local failures, passed = {}, 0

local function check(name, cond, detail)
  if cond then
    passed = passed + 1
  else
    failures[#failures + 1] = name .. (detail and (': ' .. detail) or '')
  end
end

local function eq(name, got, want)
  check(name, vim.deep_equal(got, want), 'got ' .. vim.inspect(got) .. ', want ' .. vim.inspect(want))
end

-- File names the server governs.
for _, f in ipairs({ '/p/pyproject.toml', '/p/requirements.txt', '/p/dev-requirements.txt', '/p/requirements-dev.in', '/p/PyProject.toml' }) do
  check('governed ' .. f, lex.is_governed(f))
end
for _, f in ipairs({ '/p/Cargo.toml', '/p/notes.txt', '/p/uv.lock', '/p/pyproject.toml.bak', '/p/requirements.txt.orig' }) do
  check('not governed ' .. f, not lex.is_governed(f))
end

-- Roots, on a real tree.
local tmp = vim.fn.tempname()
local function touch(p)
  vim.fn.mkdir(vim.fn.fnamemodify(p, ':h'), 'p')
  vim.fn.writefile({}, p)
end
touch(tmp .. '/mono/.lexalign.toml')
touch(tmp .. '/mono/svc/a/pyproject.toml')
touch(tmp .. '/solo/pyproject.toml')
touch(tmp .. '/solo/reqs/requirements.txt')
vim.fn.mkdir(tmp .. '/gitonly/.git', 'p')
touch(tmp .. '/gitonly/sub/requirements-dev.txt')
touch(tmp .. '/bare/requirements.txt')
eq('.lexalign.toml wins over a nearer pyproject.toml', lex.find_root(tmp .. '/mono/svc/a/pyproject.toml'), tmp .. '/mono')
eq('nearest pyproject.toml', lex.find_root(tmp .. '/solo/reqs/requirements.txt'), tmp .. '/solo')
eq('.git', lex.find_root(tmp .. '/gitonly/sub/requirements-dev.txt'), tmp .. '/gitonly')
-- /tmp itself may sit under a .git-less tree: the file's folder is the fallback.
local bare = lex.find_root(tmp .. '/bare/requirements.txt')
check('fallback root is the file folder or an ancestor', vim.startswith(tmp .. '/bare', bare), bare)

-- Settings: empty strings are not sent.
lex.setup({ cmd = { 'true' }, settings = { lexAlign = { serverUrl = '', project = 'demo', debounceMs = 20, scopes = { 'runtime' } } } })
eq('server settings', lex.server_settings(), { project = 'demo', debounceMs = 20, scopes = { 'runtime' } })
local cc = lex.client_config(tmp .. '/solo')
eq('client cmd', cc.cmd, { 'true' })
eq('init options', cc.init_options, { project = 'demo', debounceMs = 20, scopes = { 'runtime' } })
eq('settings section', cc.settings, { lexAlign = { project = 'demo', debounceMs = 20, scopes = { 'runtime' } } })
eq('client root', cc.root_dir, tmp .. '/solo')
eq('client cwd', cc.cmd_cwd, tmp .. '/solo')
eq('list options replace the defaults', lex.config.root_markers, { '.lexalign.toml', 'pyproject.toml', '.git' })

-- Native config: root_dir only answers for governed buffers.
local nc = lex.native_config()
vim.cmd('edit ' .. vim.fn.fnameescape(tmp .. '/solo/pyproject.toml'))
local got
nc.root_dir(vim.api.nvim_get_current_buf(), function(d)
  got = d
end)
eq('native root_dir for pyproject.toml', got, tmp .. '/solo')
touch(tmp .. '/solo/Cargo.toml')
vim.cmd('edit ' .. vim.fn.fnameescape(tmp .. '/solo/Cargo.toml'))
got = nil
nc.root_dir(vim.api.nvim_get_current_buf(), function(d)
  got = d
end)
eq('native root_dir skips Cargo.toml', got, nil)
eq('attach skips Cargo.toml', lex.attach(vim.api.nvim_get_current_buf()), nil)

-- A missing binary: no client, one clear error.
local notes = {}
local orig = vim.notify
vim.notify = function(msg, level)
  notes[#notes + 1] = { msg = msg, level = level }
end
lex.setup({ cmd = { tmp .. '/no/such/lex-align', 'lsp' }, use_native = false })
vim.cmd('edit ' .. vim.fn.fnameescape(tmp .. '/solo/reqs/requirements.txt'))
check('no client without a binary', lex.attach(vim.api.nvim_get_current_buf()) == nil)
vim.wait(500, function()
  return #notes > 0
end, 20)
vim.notify = orig
eq('one notification', #notes, 1)
check('the notification says what to do', notes[1] and notes[1].msg:find('cannot run', 1, true) and notes[1].msg:find("setup({ cmd", 1, true), vim.inspect(notes[1]))
check('as an error', notes[1] and notes[1].level == vim.log.levels.ERROR)
check(':LexAlignRestart exists', vim.fn.exists(':LexAlignRestart') == 2)

vim.fn.delete(tmp, 'rf')
if #failures > 0 then
  io.stderr:write(string.format('unit: %d passed, %d FAILED\n  %s\n', passed, #failures, table.concat(failures, '\n  ')))
  vim.cmd('cquit 1')
else
  io.stderr:write(string.format('unit: %d passed\n', passed))
  vim.cmd('qall!')
end
