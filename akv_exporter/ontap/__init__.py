"""Talking to ONTAP: the REST client and the parsing of its azure-key-vaults answers."""
