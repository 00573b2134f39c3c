"""An MNIST image as every part of the service holds it: 28 rows of 28 uint8 pixels.

Row by row, 784 values 0-255, light ink on a black field: a JSON vector, a CSV row, the bytes
in Redis and in a stream entry, and the network's input are all this.
"""

SIDE = 28  # rows, and pixels per row
N_PIXELS = SIDE * SIDE  # 784
