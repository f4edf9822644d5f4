// The watcher: see Watcher.swift (being written).
