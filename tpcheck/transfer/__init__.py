"""μTransfer: tune on a small proxy, transfer to the large model (work in progress)."""
