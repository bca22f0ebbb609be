"""Getting data from the internet (download.py): the table of what to fetch, transfers that resume and check
checksums, and archives unpacked atomically. Nothing here imports TensorFlow."""
