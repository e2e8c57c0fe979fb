"""Wire formats, one module each: ``device`` is what bedside devices speak over the
websocket, ``feed`` is what panels receive, ``pcd01`` is HL7 v2 IHE PCD-01 in and its ACK out.
Every other module imports them; they import only monitor.core."""
