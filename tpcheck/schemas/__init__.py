"""JSON Schemas of the files users write for tpcheck ([tool.tpcheck], plan files)."""
