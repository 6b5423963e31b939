"""Everything that knows a model family. The only package that imports diffusers model classes.

Importing the package is cheap (no torch, diffusers or transformers): data code imports the geometry rules from
here, and the command line stays fast. The family modules import the heavy libraries when they are used.
"""
