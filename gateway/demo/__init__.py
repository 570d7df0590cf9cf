"""The main job: a registry, a node and departmental traffic, run end to end."""
