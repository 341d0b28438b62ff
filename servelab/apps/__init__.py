"""Reference Serve applications that configs and manifests point `import_path` at."""
