"""Pictures of digits (PNG, JPEG, ...) made into the 28x28 pixels MNIST's model reads.

Both the API (`POST /v1/predict/image`) and the workers (stream entries with an `image`
field) read pictures, and neither may import the other, so the reading lives here: no Flask,
no Redis, no network; Pillow decodes, OpenCV and SciPy find and place the digit.
"""
