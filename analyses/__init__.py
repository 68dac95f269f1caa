"""Paper tables and figures, one script each; `python -m analyses.run_all --config <yaml>` regenerates all."""
