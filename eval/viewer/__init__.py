"""Grounded-reasoning viewer and the paper's expert annotation (Methods, "Expert Annotation").

A local web app shows one or two models' answers on the X-ray with every box of the reasoning drawn
where it points, step by step; in annotation mode pairs are blinded and rated on the paper's five
dimensions, stored in SQLite; ``results`` makes the Table 2-style summary with inter-group
agreement; ``export`` writes one PNG per item for papers and slides.
"""
