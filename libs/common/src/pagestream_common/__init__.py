"""Pieces shared by every pagestream component."""
