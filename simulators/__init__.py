"""Simulated bedside devices for Vigil: physiology, scenarios, device clients, demo and replay.

The simulators talk to the monitor only over the wire (device websocket, HTTP API).
"""
