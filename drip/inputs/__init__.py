"""Reading the files users write: text with a clear decoding error, YAML with every key located."""
