"""Build the vocabulary bridge data (kb/data/terms.tsv, kb/data/acts.tsv, kb/data/bridge.tsv); the methods are kb/vocab_build.py.

    python scripts/build_vocab.py [--seed DIR] [--laws DIR] [--reports DIR]... [--out-dir kb/data]
"""

import sys

from kb.vocab_build import main

if __name__ == "__main__":
    sys.exit(main())
