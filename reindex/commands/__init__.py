"""One module per command, each a library function the CLI calls: build, remap/invert (and to-text),
export, verify, inspect. They sit on top of everything else; nothing below imports them."""
