-- lex-align for Neovim: runs `lex-align lsp` on pyproject.toml and
-- requirements files.
--
-- Three code paths, picked by what the running Neovim offers:
--   * 0.11+  vim.lsp.config('lex_align', …) + vim.lsp.enable('lex_align')
--   * 0.8–0.10  vim.lsp.start (reuses one client per root by itself)
--   * 0.7    vim.lsp.start_client + vim.lsp.buf_attach_client, with our own
--            one-client-per-root bookkeeping
-- Only APIs that exist in 0.7 are used outside the branches that check for
-- the newer ones (no vim.fs, no vim.iter, no client:method() calls).

local M = {}

M.name = 'lex_align'

local uv = vim.loop

local defaults = {
  -- The server command; the binary is looked up on PATH unless a path is given.
  cmd = { 'lex-align', 'lsp' },
  -- Buffers of these filetypes are candidates; only governed file names
  -- (pyproject.toml, *requirements*.txt, *requirements*.in) get a client.
  filetypes = { 'toml', 'requirements', 'text' },
  -- Root: the nearest folder with .lexalign.toml wins; otherwise the nearest
  -- with pyproject.toml or .git; otherwise the file's folder.
  root_markers = { '.lexalign.toml', 'pyproject.toml', '.git' },
  -- Sent as initializationOptions and answered to workspace/configuration.
  -- Keys: serverUrl, project, debounceMs, scopes (see README).
  settings = { lexAlign = {} },
  capabilities = nil,
  on_attach = nil,
  on_exit = nil,
  -- Give *requirements*.txt / .in files the `requirements` filetype (0.11+
  -- path only), so vim.lsp.enable sees them.
  requirements_filetype = true,
  -- false: use the vim.lsp.start path even where vim.lsp.config exists.
  use_native = true,
}

M.config = vim.deepcopy(defaults)

local function has_native()
  return vim.lsp.config ~= nil and type(vim.lsp.enable) == 'function'
end

local function basename(path)
  return (path:gsub('[/\\]+$', ''):match('[^/\\]+$')) or path
end

local function dirname(path)
  local d = path:match('^(.*)[/\\][^/\\]*$')
  if d == nil then
    return '.'
  end
  if d == '' then
    return '/'
  end
  return d
end

local function exists(path)
  return uv.fs_stat(path) ~= nil
end

--- Whether the server analyses a file of this name (mirrors the server's rule).
function M.is_governed(path)
  local name = basename(path or ''):lower()
  if name == 'pyproject.toml' then
    return true
  end
  if name:find('requirements', 1, true) == nil then
    return false
  end
  return name:sub(-4) == '.txt' or name:sub(-3) == '.in'
end

--- The project root for a file: see `root_markers` above.
function M.find_root(path, markers)
  markers = markers or M.config.root_markers
  local start = dirname(vim.fn.fnamemodify(path, ':p'))
  local function walk(names)
    local dir = start
    while true do
      for _, m in ipairs(names) do
        if exists(dir .. '/' .. m) then
          return dir
        end
      end
      local parent = dirname(dir)
      if parent == dir or parent == '.' then
        return nil
      end
      dir = parent
    end
  end
  -- The first marker is the project's lex-align file: it names the project
  -- for every manifest below it, so it takes priority over nearer ones.
  local first = markers[1]
  if first ~= nil then
    local r = walk({ first })
    if r then
      return r
    end
  end
  local rest = {}
  for i = 2, #markers do
    rest[#rest + 1] = markers[i]
  end
  return walk(rest) or start
end

--- settings.lexAlign without empty strings, so the server's own discovery
--- applies (an empty serverUrl would otherwise be taken literally).
function M.server_settings()
  local section = (M.config.settings or {}).lexAlign or {}
  local out = {}
  for k, v in pairs(section) do
    if not (type(v) == 'string' and vim.trim(v) == '') then
      out[k] = v
    end
  end
  return out
end

local warned_missing = false

--- Whether the command can run; warns once with the fix when it cannot.
function M.check_cmd()
  local cmd = M.config.cmd
  if type(cmd) ~= 'table' then
    return true -- a function cmd (0.11+) is the user's business
  end
  local exe = cmd[1]
  if exe ~= nil and vim.fn.executable(exe) == 1 then
    return true
  end
  if not warned_missing then
    warned_missing = true
    vim.schedule(function()
      vim.notify(
        string.format(
          "lex-align: cannot run '%s' (not found on PATH or not executable). "
            .. "Install lex-align, or call require('lex_align').setup({ cmd = { '/full/path/to/lex-align', 'lsp' } }).",
          tostring(exe)
        ),
        vim.log.levels.ERROR
      )
    end)
  end
  return false
end

--- The client configuration for one root (vim.lsp.start / start_client).
function M.client_config(root)
  local settings = M.server_settings()
  return {
    name = M.name,
    cmd = M.config.cmd,
    cmd_cwd = root,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = basename(root) } },
    init_options = settings,
    settings = { lexAlign = settings },
    capabilities = M.config.capabilities or vim.lsp.protocol.make_client_capabilities(),
    on_attach = M.config.on_attach,
    on_exit = M.config.on_exit,
  }
end

--- The vim.lsp.config table (Neovim 0.11+); also what lsp/lex_align.lua returns.
function M.native_config()
  local settings = M.server_settings()
  return {
    cmd = M.config.cmd,
    filetypes = M.config.filetypes,
    -- Called per buffer: not calling on_dir keeps the client off other
    -- TOML/text files (Cargo.toml, notes.txt).
    root_dir = function(bufnr, on_dir)
      local name = vim.api.nvim_buf_get_name(bufnr)
      if name ~= '' and M.is_governed(name) and M.check_cmd() then
        on_dir(M.find_root(name))
      end
    end,
    init_options = settings,
    settings = { lexAlign = settings },
    capabilities = M.config.capabilities,
    on_attach = M.config.on_attach,
    on_exit = M.config.on_exit,
  }
end

-- 0.7: root -> client id
local clients_by_root = {}

--- Attaches lex-align to a buffer when it is a governed file.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' or not M.is_governed(name) or not M.check_cmd() then
    return nil
  end
  local root = M.find_root(name)
  if type(vim.lsp.start) == 'function' then
    return vim.lsp.start(M.client_config(root), { bufnr = bufnr })
  end
  local id = clients_by_root[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if client == nil or client.is_stopped() then
    id = vim.lsp.start_client(M.client_config(root))
    clients_by_root[root] = id
  end
  if id ~= nil then
    vim.lsp.buf_attach_client(bufnr, id)
  end
  return id
end

--- The running lex-align clients (any Neovim version).
function M.clients()
  local all
  if type(vim.lsp.get_clients) == 'function' then
    all = vim.lsp.get_clients({ name = M.name })
  else
    all = vim.lsp.get_active_clients()
  end
  local out = {}
  for _, c in ipairs(all) do
    if c.name == M.name then
      out[#out + 1] = c
    end
  end
  return out
end

--- Stops every lex-align client and attaches the open governed buffers to
--- fresh ones (after upgrading the binary, or when the daemon moved).
function M.restart()
  local ids = {}
  for _, c in ipairs(M.clients()) do
    ids[#ids + 1] = c.id
  end
  if #ids > 0 then
    vim.lsp.stop_client(ids)
  end
  clients_by_root = {}
  warned_missing = false
  local function reattach()
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(buf) then
        M.attach(buf)
      end
    end
  end
  -- Wait for the old processes to go, so vim.lsp.start does not reuse them.
  vim.wait(3000, function()
    return #M.clients() == 0
  end, 50)
  reattach()
end

local function define_commands()
  vim.api.nvim_create_user_command('LexAlignRestart', function()
    M.restart()
  end, { desc = 'lex-align: restart the language server' })
end

local augroup_name = 'lex_align'

--- Sets the plugin up. Options (all optional): cmd, filetypes, root_markers,
--- settings = { lexAlign = { serverUrl, project, debounceMs, scopes } },
--- capabilities, on_attach, requirements_filetype.
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  -- Lists are replaced, not merged index by index.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts and opts[key] ~= nil then
      M.config[key] = opts[key]
    end
  end
  define_commands()

  if has_native() and M.config.use_native ~= false then
    if M.config.requirements_filetype and vim.filetype and vim.filetype.add then
      vim.filetype.add({
        pattern = {
          ['.*requirements.*%.txt'] = 'requirements',
          ['.*requirements.*%.in'] = 'requirements',
        },
      })
    end
    vim.lsp.config(M.name, M.native_config())
    vim.lsp.enable(M.name)
    return M
  end

  local group = vim.api.nvim_create_augroup(augroup_name, { clear = true })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  -- requirements files have no filetype of their own on older Neovim.
  vim.api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile' }, {
    group = group,
    pattern = { 'pyproject.toml', '*requirements*.txt', '*requirements*.in' },
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  -- Buffers opened before setup() ran.
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      M.attach(buf)
    end
  end
  return M
end

return M
