// The store: see Store.swift (being written).
