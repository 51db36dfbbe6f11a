"""Another program to drag an image file from: a small window; pressing the mouse in it and moving starts a drag
of the file named on the command line (as a file manager offers it: a file URL)."""

import sys

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import QApplication, QLabel


class Source(QLabel):
    def __init__(self, path: str):
        super().__init__(f"drag me: {path}")
        self.path = path
        self.setWindowTitle("drag source")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.resize(300, 200)

    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.MouseButton.LeftButton:
            mime = QMimeData()
            mime.setUrls([QUrl.fromLocalFile(self.path)])
            drag = QDrag(self)
            drag.setMimeData(mime)
            result = drag.exec(Qt.DropAction.CopyAction)
            print("dropped" if result == Qt.DropAction.CopyAction else "refused", flush=True)


if __name__ == "__main__":
    app = QApplication(sys.argv[:1])
    source = Source(sys.argv[1])
    source.move(int(sys.argv[2]), int(sys.argv[3]))
    source.show()
    sys.exit(app.exec())
