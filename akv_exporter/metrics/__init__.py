"""Snapshots -> metric families -> pre-rendered exposition bytes."""
