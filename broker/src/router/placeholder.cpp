// placeholder so the target has a source; delete when the subsystem has real files
