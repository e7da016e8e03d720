"""Every CMRxRecon convention: layouts, file formats, masks, scoring and the streaming run."""
