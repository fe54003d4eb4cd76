class NodeAffinitySchedulingStrategy:
    def __init__(self, node_id, soft=False):
        self.node_id, self.soft = node_id, soft
