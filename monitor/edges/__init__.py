"""The monitor's edges: the REST and websocket API (``api``), the HL7 PCD-01 listener
(``hl7``, over ``mllp``). Edges translate the outside world and delegate to the use cases and
the pipeline; they hold no clinical rule."""
