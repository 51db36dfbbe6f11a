; Inno Setup 6 script for the Windows installer. packaging/build.py runs it with the folder PyInstaller made:
;   iscc /DAppVersion=0.1.0 /DSourceDir=..\..\dist\captioner /O..\..\dist packaging\windows\captioner.iss
; The wizard uses Windows' own controls only (no pictures, no custom pages), which screen readers read.
; It installs for the current user (no administrator needed) unless the user chooses all users.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\captioner"
#endif

[Setup]
AppId={{6F0C8D52-3B7A-4E0B-9C61-2A5E7D1B4F90}
AppName=Captioner
AppVersion={#AppVersion}
AppVerName=Captioner {#AppVersion}
AppPublisher=The captioner project
AppComments=Hear what is in an image or on your screen, on your own machine.
DefaultDirName={autopf}\Captioner
DefaultGroupName=Captioner
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputBaseFilename=captioner-{#AppVersion}-windows-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\captioner-gui.exe
UninstallDisplayName=Captioner
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "startup"; Description: "Start Captioner when I sign in to Windows (the hotkeys work at once; the window stays in the notification area)"; Flags: unchecked
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Captioner"; Filename: "{app}\captioner-gui.exe"; Comment: "Hear what is in an image or on your screen"
Name: "{autodesktop}\Captioner"; Filename: "{app}\captioner-gui.exe"; Tasks: desktopicon
Name: "{autostartup}\Captioner"; Filename: "{app}\captioner-gui.exe"; Parameters: "--background"; Tasks: startup

[Run]
Filename: "{app}\captioner-gui.exe"; Description: "Start Captioner now"; Flags: nowait postinstall skipifsilent

[Code]
{ The models (about 1 GB each) are downloaded into the user's data folder, not the install folder, so the
  uninstaller asks about them. History and settings are the user's own and are always kept. }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Models: String;
begin
  if CurUninstallStep <> usPostUninstall then
    Exit;
  Models := ExpandConstant('{localappdata}\captioner\models');
  if not DirExists(Models) then
    Exit;
  if SuppressibleMsgBox('Keep the downloaded models?' + #13#10 + #13#10 +
      'Yes keeps them in ' + Models + ', so that a new install of Captioner needs no download.' + #13#10 +
      'No deletes them and frees the space. Your history and settings are kept either way.',
      mbConfirmation, MB_YESNO or MB_DEFBUTTON1, IDYES) = IDNO then
    DelTree(Models, True, True, True);
end;
