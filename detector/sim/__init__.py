"""Tools around the detector: labeled traffic simulation, evaluation, the demo and the embedded broker."""
