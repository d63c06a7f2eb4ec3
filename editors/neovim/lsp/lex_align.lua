-- Native configuration for Neovim 0.11+: `vim.lsp.enable('lex_align')` is
-- enough; override fields with vim.lsp.config('lex_align', { … }) or call
-- require('lex_align').setup({ … }).
return require('lex_align').native_config()
