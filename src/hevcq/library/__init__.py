"""The client side: scan a library, upload it, bring results home, replace originals safely."""
