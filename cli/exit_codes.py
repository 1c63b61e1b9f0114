"""The `reelforge` exit codes, shared by every command.

0 done; 2 the input was rejected, or `serve` was given bad settings (one line on stderr naming
why); 1 our failure.
"""

EXIT_OK, EXIT_FAILURE, EXIT_REJECTED = 0, 1, 2
