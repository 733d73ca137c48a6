"""SlicerSurgVLP's Slicer-free library: the server client, timelines and their edits, frame and
segmentation volumes, prompt tables, colours and background tasks.

Every module here runs on the standard library and numpy alone (Python 3.9 to 3.12, numpy 1.26 to 2.x),
as the Python of any Slicer since 5.8 provides them, and is tested with pytest outside Slicer. The one
exception is ``scene``, which builds MRML nodes and so imports ``slicer`` and ``vtk``; no other module of
the library imports it.
"""

__version__ = "0.1.0"
