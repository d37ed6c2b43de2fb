"""A writer run in a child process by the crash and concurrency tests.

usage: writer_process.py FOLDER BATCH COMMITS
Adds BATCH items and commits, COMMITS times (0: forever).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for vectors.py

from vectors import clustered, items

from sketchsearch.gallery import Gallery


def main() -> None:
    folder, batch, commits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    done = 0
    with Gallery.open(folder, mode="rw") as gallery:
        while commits == 0 or done < commits:
            start = gallery.info().live + gallery.info().deleted
            gallery.add(clustered(batch, 16, seed=start), items(batch, start=start))
            gallery.commit()
            done += 1
            print(f"committed {start + batch}", flush=True)


if __name__ == "__main__":
    main()
