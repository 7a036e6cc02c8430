"""Causal world model: the generator's graph, mechanisms, interventions, discovery."""
