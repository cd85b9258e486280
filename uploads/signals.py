from django.dispatch import Signal

# Sent (after commit) when an image is stored and may enter the grading queues: ``image`` is the Image.
# grading listens; uploads never imports grading.
image_ready_for_grading = Signal()

# Sent (after commit) when metadata of images changed: ``image_ids`` (list of UUIDs) and ``fields`` (names among
# hospital, lab_unit, camera, disease, area, mydriatic). Grading may re-file queued images whose disease changed.
image_metadata_changed = Signal()
