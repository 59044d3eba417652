# Fills exp_samples of a promtool test file from what promtool returns
# (run once by hand while writing the tests; the results were reviewed).
import re, subprocess, sys, yaml
