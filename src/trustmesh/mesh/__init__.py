"""The libp2p mesh (issue 15, under way): a device's mesh identity bound to its
did:key (:mod:`~trustmesh.mesh.binding`), the topics and their messages
(:mod:`~trustmesh.mesh.topics`), and each topic's validator, which checks the
signatures inside a message before anything is forwarded
(:mod:`~trustmesh.mesh.validate`)."""
