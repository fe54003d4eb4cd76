"""GRPO reward for DeepMedix-R1: answer, coordinate (grounding) and format scores.

Also the small shared vocabulary the rest of the project imports: the ground-truth schema, the
box grammar, the model's coordinate frame and answer normalisation.
"""
