"""DriveGPT's YAML configs, installed as package data (``drivegpt.configs``): every command finds
``configs/<name>.yaml`` here when the path does not exist relative to the working directory."""
