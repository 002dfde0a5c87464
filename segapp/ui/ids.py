"""Component ids of the web app, as constants (one place to rename, no typos in callbacks).

Pattern-matching ids are built by the small functions at the end.
"""

# -- session and client-side state --------------------------------------------
SESSION = "session-id"                # dcc.Store(storage_type="local"): the session id
CURRENT = "current-image"             # {"image": item id, "plane": int} of the shown image
IMAGES_VERSION = "images-version"     # bumped when the session's image list changes
CLASSES = "classes"                   # [{"id", "name", "color"}] (mirror of the server copy)
ACTIVE_CLASS = "active-class"         # id of the class being painted
ANNOT_VERSION = "annot-version"       # {"n": int, "image": key}: bumped on every annotation change
TRAIN_REQUEST = "train-request"       # {"n": int, "reason": str}: ask for a retrain
EXTRACT_REQUEST = "extract-request"   # {"n": int}: features are missing, run the background job
MODEL_VERSION = "model-version"       # {"v": version, "rendered": bool}: a new model/result is stored
OVERLAY = "overlay-data"              # {"key", "version", "tiles": [...], "clear"}: overlay tiles, patched in the browser
VIEW = "canvas-view"                  # {"x0", "x1", "y0", "y1", "px"}: the visible region (set in the browser)
TILE_QUEUE = "tile-queue"             # {"key", "version", "n"}: overlay tiles still to predict (a chain of requests)
TILE_TIMER = "tile-timer"             # dcc.Interval ticking while TILE_QUEUE holds work
TILE_SEEN = "tile-seen"               # {"key", "v", "tiles": ["i:s", ...]}: overlay tiles the browser shows
TILE_STATUS = "tile-status"           # on-canvas note while the rest of the image is being predicted
SCALE = "canvas-scale"                # screen pixels per image pixel (set in the browser)
NOTICES = "notices"                   # toast container
CLIENT_ALERT = "client-alert"         # toast raised in the browser (file over the size limit)

# -- header -------------------------------------------------------------------
STATUS = "status-text"
MODE_BADGE = "mode-badge"

# -- images panel ---------------------------------------------------------------
UPLOAD = "upload-images"
SAMPLE_SELECT = "sample-select"
SAMPLE_ADD = "sample-add"
THUMBS = "thumbnails"
PLANE_SLIDER = "plane-slider"
PLANE_ROW = "plane-row"
DELETE_IMAGE = "delete-image"
DELETE_ROW = "delete-row"             # the row of the remove link (hidden while no image is shown)

# -- classes panel --------------------------------------------------------------
CLASS_LIST = "class-list"
CLASS_ADD = "class-add"
CLASS_NAME = "class-name"
CLASS_COLOR = "class-color"
CLASS_DELETE = "class-delete"
STROKE_WIDTH = "stroke-width"
UNDO = "undo"
REDO = "redo"
CLEAR_CLASS = "clear-class"
CLEAR_ALL = "clear-all"

# -- canvas -----------------------------------------------------------------------
GRAPH = "canvas"
CANVAS_INFO = "canvas-info"
EMPTY_HINT = "empty-hint"
OPACITY = "overlay-opacity"
SHOW_ANNOT = "show-annotations"
OVERLAY_MODE = "overlay-mode"
PROBA_CLASS = "proba-class"

# -- the on-canvas progress banner: ONE for every long job (see callbacks.common.canvas_job) --------
JOB_BANNER = "job-banner"             # shown while a background job runs (its running= toggles the style)
JOB_LABEL = "job-label"               # what is running, e.g. "Extracting features · disk.png"
JOB_FRACTION = "job-fraction"         # "3/8" or "42 %"
JOB_BAR = "job-bar"                   # dbc.Progress, 0..100
JOB_CANCEL = "job-cancel"             # cancels whichever background job runs

# -- training -------------------------------------------------------------------
LIVE = "live-update"
TRAIN = "train"
TRAIN_INFO = "train-info"
EXTRACTOR = "extractor"
EXTRACTOR_HELP = "extractor-help"
SIGMAS = "sigma-range"
SIGMA_ROW = "sigma-row"
TREES = "trees"
DEPTH = "depth"
NORMALIZATION = "normalization"
ALL_IMAGES = "train-all-images"

# -- batch ------------------------------------------------------------------------
APPLY_ALL = "apply-all"
GALLERY = "gallery"

# -- model files ------------------------------------------------------------------
MODEL_UPLOAD = "model-upload"
MODEL_INFO = "model-info"

# -- objects ----------------------------------------------------------------------
SMOOTH = "pp-smooth"
MIN_SIZE = "pp-min-size"
FILL_HOLES = "pp-fill-holes"
OBJ_CLASS = "obj-class"
SPLIT = "obj-split"
PIXEL_SIZE = "pixel-size"
PIXEL_UNIT = "pixel-unit"
MEASURE = "measure"
MEASURE_REQUEST = "measure-request"   # {"key", settings..., "t"}: measure (the background job) with these
OBJ_TABLE = "obj-table"
OBJ_SUMMARY = "obj-summary"
OBJ_HIST = "obj-hist"
OBJ_CSV = "obj-csv"

# -- evaluate -----------------------------------------------------------------------
GT_UPLOAD = "gt-upload"
EVAL_RESULT = "eval-result"

# -- downloads ----------------------------------------------------------------------
DOWNLOAD = "download"
DL_SEG_PNG = "dl-seg-png"
DL_SEG_TIFF = "dl-seg-tiff"
DL_PROBA = "dl-proba"
DL_ANNOT = "dl-annot"
DL_ANNOT_JSON = "dl-annot-json"
ANNOT_UPLOAD = "annot-upload"         # load annotations (JSON or a label image) onto the image on screen
DL_MODEL = "dl-model"
DL_ZIP = "dl-zip"

SIDEBAR_TABS = "sidebar-tabs"


# -- pattern-matching ids ------------------------------------------------------------
def thumb(item: str) -> dict:
    """The clickable thumbnail of one image (``item`` = ``<image id>``)."""
    return {"type": "thumb", "item": item}


def class_select(class_id: int) -> dict:
    """The button that makes a class the active one."""
    return {"type": "class-select", "id": class_id}


def gallery_item(item: str) -> dict:
    """A result thumbnail in the gallery (``item`` = the plane's key ``<image id>_<plane>``)."""
    return {"type": "gallery-item", "item": item}


def restore_image(item: str) -> dict:
    """The Undo button in the toast of a removed image (``item`` = its image id)."""
    return {"type": "restore-image", "item": item}


def removed_toast(item: str) -> dict:
    """The toast that says an image was removed (closed when the removal is undone)."""
    return {"type": "removed-toast", "item": item}
