"""What every package uses: files written atomically and locked (disk.py), progress shown (progress.py)."""
