pip install foo\
  bar