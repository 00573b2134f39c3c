"""File formats the service reads and writes (Kaggle CSV), with no network and no Redis.

The API parses uploads with these readers before anything is enqueued; keeping them out of
`model/` means parsing a CSV never loads the network.
"""
