"""The schema plugin's pieces: JSON parsing and validation, what a request asks for, the repair turn."""
