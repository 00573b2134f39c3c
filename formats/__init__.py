"""File formats the service reads and writes, with no network and no Redis.

The MNIST image (`mnist`), Kaggle CSV files (`kaggle_csv`, `compressed`), and the version
that names a weights file (`weights`).

The API parses uploads with these readers before anything is enqueued; keeping them out of
`model/` means parsing a CSV never loads the network.
"""
