// The client SDK; see docs/ARCHITECTURE.md.
