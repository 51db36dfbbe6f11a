"""Shows a picture in a frameless window at an exact place, as a stand-in for what a user has on screen.

    python show_picture.py IMAGE X Y
"""

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QApplication, QLabel

app = QApplication(sys.argv[:1])
label = QLabel()
label.setWindowTitle("picture")
label.setWindowFlags(Qt.WindowType.FramelessWindowHint)
label.setContentsMargins(0, 0, 0, 0)
pixmap = QPixmap(sys.argv[1])
label.setPixmap(pixmap)
label.setFixedSize(pixmap.size())
label.move(int(sys.argv[2]), int(sys.argv[3]))
label.show()
app.exec()
