-- Nothing starts until require('lex_align').setup() (or, on Neovim 0.11+,
-- vim.lsp.enable('lex_align'), which reads lsp/lex_align.lua).
if vim.g.loaded_lex_align then
  return
end
vim.g.loaded_lex_align = true

vim.api.nvim_create_user_command('LexAlignRestart', function()
  require('lex_align').restart()
end, { desc = 'lex-align: restart the language server' })
