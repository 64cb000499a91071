"""Translating other tools' image automation into ImagePromotion manifests (pure).

`flux` reads Flux's ImageRepository, ImagePolicy, ImageUpdateAutomation (and GitRepository);
`argocd` reads Argo CD Image Updater's ImageUpdater CRs and the legacy annotations on Argo CD
Applications. Both return `Translation`s: an ImagePromotion as data plus a note for every setting
that does not map exactly; `render` writes them as YAML with each note as a comment.
"""
