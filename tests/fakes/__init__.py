"""Fakes of vendor APIs served on 127.0.0.1, speaking each vendor's real wire protocol."""
