"""Wire formats: ``device`` is what bedside devices speak over the websocket, ``feed`` is what
panels receive, ``pcd01`` is HL7 v2 IHE PCD-01 in and its ACK out (its tables in
``pcd01_codes``, the ACK itself in ``pcd01_ack``). Every other module imports them; they
import only monitor.core."""
