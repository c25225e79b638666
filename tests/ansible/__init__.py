"""Tests of the Ansible collection lockengine.cluster (docs/collection.md)."""
