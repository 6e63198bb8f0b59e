"""Certificates: the one noise sampler, the confidence bounds, CERTIFY and PREDICT (Cohen et al. 2019), sequential
CERTIFY, the multi-scale cascade, and the inference engine (device, precision) that votes run through.

Pure computation on a classifier and an image: may import the foundation only, never the run, reports or methods.
"""
