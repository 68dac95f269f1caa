"""The child process of `interp.viewer.tables.ChildTables`: the report tables of one run, pickled to stdout."""
import pickle
import sys

from .tables import report_tables

if __name__ == "__main__":
    sys.stdout.buffer.write(pickle.dumps(report_tables(sys.argv[1])))
